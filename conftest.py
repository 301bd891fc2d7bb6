"""`pytest --nbval-lax notebooks/` runs every notebook at smoke scale into a throwaway results folder.

It lives at the repository root (not in notebooks/) so JupyterLab shows only notebooks there.

The notebooks' parameters cells read SAR_PROFILE and SAR_RESULTS; the kernels nbval starts inherit this
process's environment. Without these defaults a bare pytest call would train the full cpu profile and
overwrite the committed results/. Set either variable yourself to override.
"""
import os
import tempfile

os.environ.setdefault("SAR_PROFILE", "smoke")
os.environ.setdefault("SAR_RESULTS", tempfile.mkdtemp(prefix="sar-nbval-"))
