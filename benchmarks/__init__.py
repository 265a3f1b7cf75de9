"""Side-by-side speed and memory benchmarks: `python -m benchmarks` runs every module's main()."""
