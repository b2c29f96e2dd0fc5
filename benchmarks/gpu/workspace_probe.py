"""Where CUDA's allocated bytes exceed the tensors: cuBLAS / cuBLASLt workspaces per thread.

Prints memory_allocated after each first use: a forward matmul (main thread's handle), a
backward (the autograd engine's device thread has its own handle), a second backward.
"""

import torch

MIB = 2**20
x = torch.randn(1000, 1000, device="cuda", requires_grad=True)
w = torch.randn(1000, 1000, device="cuda", requires_grad=True)
torch.cuda.synchronize()
tensors = torch.cuda.memory_allocated()
print(f"tensors x, w: {tensors / MIB:.2f} MiB")
y = x @ w
torch.cuda.synchronize()
print(f"after forward matmul: +{(torch.cuda.memory_allocated() - tensors - y.nbytes) / MIB:.2f}"
      " MiB beyond its output")
before = torch.cuda.memory_allocated()
y.sum().backward()
torch.cuda.synchronize()
grads = x.grad.nbytes + w.grad.nbytes
print(f"after backward: +{(torch.cuda.memory_allocated() - before - grads) / MIB:.2f} MiB"
      " beyond the gradients")
before = torch.cuda.memory_allocated()
(x @ w).sum().backward()
torch.cuda.synchronize()
print(f"second forward+backward: +{(torch.cuda.memory_allocated() - before) / MIB:.2f} MiB")
snapshot = torch.cuda.memory_snapshot()
blocks = sorted(
    (b["size"] for s in snapshot for b in s["blocks"] if b["state"] == "active_allocated"),
    reverse=True,
)
print("active blocks (MiB):", [round(b / MIB, 2) for b in blocks[:12]])
