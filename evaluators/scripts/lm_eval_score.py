#!/usr/bin/env python3
"""Run one lm-eval-harness task on a local Hugging Face folder and print its score as JSON.

Used by evaluators/lm-eval-harness.yaml through evomerge's `command` evaluator. Everything but
the final JSON line goes to stderr, so evomerge can read stdout.
"""
import argparse
import json
import sys


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--task", required=True)
    p.add_argument("--limit", default="")
    p.add_argument("--metric", default="acc_norm,none", help="lm-eval's metric key, e.g. acc_norm,none")
    p.add_argument("--batch-size", default="auto")
    a = p.parse_args()
    import lm_eval  # imported late so --help works without it

    out = sys.stdout
    sys.stdout = sys.stderr
    try:
        res = lm_eval.simple_evaluate(
            model="hf",
            model_args=f"pretrained={a.model}",
            tasks=[a.task],
            limit=int(a.limit) if a.limit else None,
            batch_size=a.batch_size,
        )
    finally:
        sys.stdout = out
    scores = res["results"][a.task]
    name = a.metric.split(",")[0]
    samples = res.get("n-samples", {}).get(a.task, {}).get("effective")
    print(json.dumps({name: scores[a.metric], "samples": samples}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
