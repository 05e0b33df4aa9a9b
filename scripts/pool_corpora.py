"""Write one CSV manifest that pools EmoDB, RAVDESS and TESS (absolute paths, speakers
prefixed by corpus), for training on all three at once until native multi-corpus runs exist.

    python scripts/pool_corpora.py [DATA_ROOT] [OUT_CSV]
"""

import csv
import sys
from pathlib import Path

root = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data").resolve()
out = Path(sys.argv[2] if len(sys.argv) > 2 else "runs/pooled/manifest.csv")
out.parent.mkdir(parents=True, exist_ok=True)
with out.open("w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["path", "speaker", "emotion", "corpus"])
    for corpus in ("emodb", "ravdess", "tess"):
        with (root / corpus / "manifest.csv").open(newline="") as m:
            for row in csv.DictReader(m):
                writer.writerow([root / corpus / row["path"], f"{corpus}_{row['speaker']}",
                                 row["emotion"], corpus])
print(out)
