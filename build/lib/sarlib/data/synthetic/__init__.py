"""The embedded synthetic datasets: generated on the fly (generate) and written as real files (export)."""
