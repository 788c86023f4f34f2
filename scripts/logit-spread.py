#!/usr/bin/env python3
"""How far correct computations of a model land from llama.cpp's reference
top-10 logits (docs/COMPATIBILITY.md, "How far correct runs land from the
reference"); scripts/logit-spread.sh drives it.

  logit-spread.py prompts REFERENCE.json > prompts.txt
      one line per prompt: its token ids ; the ids of both reference runs'
      top-10 (fa off first), the input of scripts/llamacpp-last-logits.cpp
  logit-spread.py table REFERENCE.json NAME=LOGITS.txt... [--f64 MODEL.gguf]
      the worst top-10 difference per prompt of every run (and of the exact
      float64 forward pass of scripts/numpy-goldens.py, which needs numpy
      and gguf) against the reference's fa-off run and against the f64 pass
"""
import importlib.util
import json
import sys
from pathlib import Path


def prompts(ref):
    names = sorted(ref["fa_off"])
    for name in names:
        off = [e["id"] for e in ref["fa_off"][name]["last_pos_top10"]]
        on = [e["id"] for e in ref["fa_on"][name]["last_pos_top10"]]
        yield name, ref["fa_off"][name]["token_ids"], list(dict.fromkeys(off + on))


def f64_rows(ref, model):
    import numpy as np
    spec = importlib.util.spec_from_file_location("goldens", Path(__file__).with_name("numpy-goldens.py"))
    goldens = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(goldens)
    m = goldens.Model(model)
    forward = getattr(m, m.arch)
    rows = []
    for _, ids, want in prompts(ref):
        last = forward(np.array(ids))[-1]
        rows.append([float(last[i]) for i in want])
    return rows


def main():
    cmd, ref = sys.argv[1], json.loads(Path(sys.argv[2]).read_text())
    if cmd == "prompts":
        for _, ids, want in prompts(ref):
            print(" ".join(map(str, ids)), ";", " ".join(map(str, want)))
        return
    args = sys.argv[3:]
    runs = {}
    if "--f64" in args:
        i = args.index("--f64")
        runs["float64 forward pass"] = f64_rows(ref, args[i + 1])
        del args[i:i + 2]
    for a in args:
        name, path = a.split("=", 1)
        runs[name] = [json.loads(line) for line in Path(path).read_text().splitlines()]
    plist = list(prompts(ref))
    exact = runs.get("float64 forward pass")
    print("| run | vs reference (fa off) | vs float64 |\n|---|---|---|")
    for name, rows in runs.items():
        vs_ref, vs_f64 = [], []
        for k, ((pname, _, want), row) in enumerate(zip(plist, rows)):
            got = dict(zip(want, row))
            top = ref["fa_off"][pname]["last_pos_top10"]
            vs_ref.append(max(abs(got[e["id"]] - e["logit"]) for e in top))
            if exact is not None:
                x = dict(zip(want, exact[k]))
                vs_f64.append(max(abs(got[e["id"]] - x[e["id"]]) for e in top))
        fmt = lambda v: " / ".join(f"{d:.3f}" for d in v) if v else "-"
        print(f"| {name} | {fmt(vs_ref)} | {fmt(vs_f64)} |")


if __name__ == "__main__":
    main()
