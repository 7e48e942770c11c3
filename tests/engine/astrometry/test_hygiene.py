"""engine.astrometry never imports the synthetic instrument, Textual or Rich."""

import subprocess
import sys

CODE = """
import sys
import engine.astrometry, engine.astrometry.locate, engine.astrometry.product, engine.astrometry.solvefield
bad = sorted(m for m in sys.modules if m.startswith("engine.synth") or m.split(".")[0] in ("textual", "rich"))
print(",".join(bad))
"""


def test_astrometry_imports_no_synth_nor_ui():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
