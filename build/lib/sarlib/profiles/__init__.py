"""One file per profile (smoke, cpu, paper), plain data only: `PRESET`, the TrainConfig fields that
differ from the defaults (`python -m sarlib.train --preset NAME`), and `STUDY`, what the study targets
run under that profile (datasets, seeds, fractions, sweep, jobs, calibration candidates)."""
