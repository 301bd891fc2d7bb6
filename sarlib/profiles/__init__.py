"""One file per profile (smoke, cpu, paper), plain data only: `CONFIG`, the TrainConfig fields that
differ from the defaults (`python -m sarlib.train --profile NAME`), and `STUDY`, what the study targets
run under that profile (datasets, seeds, fractions, sweep, jobs, calibration candidates)."""
