"""Scores a corpus (one text per line) with the reference vaderSentiment and writes JSON.

Usage: vader-reference.py CORPUS OUT. Run through scripts/vader-reference.sh, which sets up
the pinned package. Lines are decoded as common/sentiment/tests/conformance.rs decodes them:
\\n, \\t and \\\\ are escapes; every line, empty ones included, is one text.
"""

import hashlib
import importlib.metadata
import json
import platform
import sys

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer


def decode(line):
    out, chars = [], iter(line)
    for c in chars:
        if c == "\\":
            n = next(chars, None)
            if n == "n":
                out.append("\n")
            elif n == "t":
                out.append("\t")
            elif n == "\\":
                out.append("\\")
            else:
                out.append(c)
                if n is not None:
                    out.append(n)
        else:
            out.append(c)
    return "".join(out)


def main(corpus_path, out_path):
    with open(corpus_path, "rb") as f:
        raw = f.read()
    body = raw.decode("utf-8")
    if body.endswith("\n"):
        body = body[:-1]
    texts = [decode(line) for line in body.split("\n")]
    analyzer = SentimentIntensityAnalyzer()
    scores = []
    for text in texts:
        s = analyzer.polarity_scores(text)
        scores.append({"text": text, "neg": s["neg"], "neu": s["neu"], "pos": s["pos"],
                       "compound": s["compound"]})
    document = {
        "reference": "vaderSentiment " + importlib.metadata.version("vaderSentiment"),
        "python": platform.python_version(),
        "corpus_sha256": hashlib.sha256(raw).hexdigest(),
        "scores": scores,
    }
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(document, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
