"""Memory categories a tracked byte belongs to (pure names; no torch)."""

CATEGORIES = (
    "parameters",
    "gradients",
    "optimizer_state",
    "activations",  # saved activations and temporaries
    "inputs",  # the batch on the device, label-embedded rows, negatives
    "eval_replication",  # eval images replicated once per candidate label
    "cache",  # whole-dataset layer-input caches (ff-progressive)
)
DEFAULT_CATEGORY = "activations"
