"""Write the BEIR folders that docs/retrieval.md measures besides SciFact and HotpotQA.

    python bench/beir_proxies.py --eval ../shared/eval --out /tmp/proxies

- `covidqa-passages/`: the 98 COVID-QA articles split into passages (at line breaks, short
  paragraphs merged until a passage has at least 300 characters), each question judged
  relevant to the passage holding its answer's start. Long documents, no titles, questions
  written by people reading the passage.
- `hotpotqa-titles/`: HotpotQA's corpus; each supporting paragraph's title as a query,
  relevant: that paragraph (grade 2) and the other supporting paragraph of its question
  (grade 1), as an entity-name query whose related entities count too.
- `hotpotqa-descriptions/`: HotpotQA's corpus; the noun phrase after "is a/was an ..." in a
  supporting paragraph's first sentence, at most 6 words, as the query; relevant: that paragraph.

Score one with `kb eval retrieval FOLDER` (add `--kb` with the HotpotQA evaluation knowledge
base for the two HotpotQA proxies: the corpus is the same, so nothing is embedded again).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path

_DESCRIPTION = re.compile(r"\b(?:is|was|are|were)\s+(?:an?|the)\s+(.*)")


def _write(folder: Path, queries: dict[str, str], qrels: list[tuple[str, str, int]]) -> None:
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with (folder / "queries.jsonl").open("w", encoding="utf-8") as fh:
        for qid, text in queries.items():
            fh.write(json.dumps({"_id": qid, "text": text}) + "\n")
    with (folder / "qrels" / "test.tsv").open("w", encoding="utf-8") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for qid, doc, grade in qrels:
            fh.write(f"{qid}\t{doc}\t{grade}\n")


def covidqa_passages(squad: Path, out: Path) -> tuple[int, int]:
    """COVID-QA as passage retrieval; (passages, queries)."""
    data = json.loads(squad.read_text(encoding="utf-8"))["data"]
    out.mkdir(parents=True, exist_ok=True)
    queries: dict[str, str] = {}
    qrels: list[tuple[str, str, int]] = []
    n = 0
    with (out / "corpus.jsonl").open("w", encoding="utf-8") as fh:
        for article in data:
            para = article["paragraphs"][0]
            text, doc = para["context"], para["document_id"]
            spans, pos = [], 0
            for m in re.finditer(r"\n+", text):
                spans.append((pos, m.start()))
                pos = m.end()
            spans.append((pos, len(text)))
            merged: list[tuple[int, int]] = []
            start: int | None = None
            for s, e in spans:
                start = s if start is None else start
                if e - start >= 300:
                    merged.append((start, e))
                    start = None
            if start is not None:
                merged.append((start, len(text)))
            for i, (s, e) in enumerate(merged):
                fh.write(json.dumps({"_id": f"{doc}-{i}", "title": "", "text": text[s:e].strip()}) + "\n")
                n += 1
            for qa in para["qas"]:
                if qa.get("is_impossible") or not qa["answers"]:
                    continue
                at = qa["answers"][0]["answer_start"]
                for i, (s, e) in enumerate(merged):
                    if s <= at < e:
                        queries[str(qa["id"])] = qa["question"]
                        qrels.append((str(qa["id"]), f"{doc}-{i}", 1))
    _write(out, queries, qrels)
    return n, len(queries)


def hotpotqa_proxies(hotpot: Path, out: Path) -> dict[str, int]:
    """The title and description query sets over HotpotQA's corpus; queries of each."""
    corpus = {}
    for line in (hotpot / "beir" / "corpus.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            corpus[row["_id"]] = row
    questions = [json.loads(x) for x in (hotpot / "questions.jsonl").read_text(encoding="utf-8").splitlines() if x]
    titles: dict[str, str] = {}
    title_qrels: dict[str, dict[str, int]] = {}
    descriptions: dict[str, str] = {}
    for q in questions:
        a, b = (d.removesuffix(".md") for d in q["docs"])
        for own, other in ((a, b), (b, a)):
            qid = "t-" + own
            titles[qid] = corpus[own]["title"]
            grades = title_qrels.setdefault(qid, {})
            grades[own] = 2
            grades[other] = max(grades.get(other, 0), 1)
            first = re.split(r"(?<=[.!?])\s", corpus[own]["text"], maxsplit=1)[0]
            m = _DESCRIPTION.search(first)
            if m:
                words = re.split(r"[,.;:()]| that | which | who | and was ", m.group(1))[0].split()
                if len(words) >= 2:
                    descriptions["d-" + own] = " ".join(words[:6])
    for name, queries, qrels in (
        ("hotpotqa-titles", titles, [(q, d, g) for q, docs in title_qrels.items() for d, g in docs.items()]),
        ("hotpotqa-descriptions", descriptions, [(q, q[2:], 1) for q in descriptions]),
    ):
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(hotpot / "beir" / "corpus.jsonl", folder / "corpus.jsonl")
        _write(folder, queries, qrels)
    return {"hotpotqa-titles": len(titles), "hotpotqa-descriptions": len(descriptions)}


def main() -> None:
    """Write the three folders."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--eval", type=Path, default=Path("/work/shared/eval"), help="the shared evaluation data")
    p.add_argument("--out", type=Path, required=True, help="where the BEIR folders are written")
    o = p.parse_args()
    passages, queries = covidqa_passages(o.eval / "covidqa" / "200423_covidQA.json", o.out / "covidqa-passages")
    print(f"{o.out / 'covidqa-passages'}: {passages} passages, {queries} queries")
    for name, n in hotpotqa_proxies(o.eval / "hotpotqa-dev", o.out).items():
        print(f"{o.out / name}: {n} queries")


if __name__ == "__main__":
    main()
