from ffbench.cli import main

main()
