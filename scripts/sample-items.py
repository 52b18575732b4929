#!/usr/bin/env python3
"""Write N sample submit items as NDJSON: {"ref": <sku>, "data": <product>} per line.

usage: sample-items.py N [--array] [--seed S] [--dup-every K]
  --array        one JSON array of items instead of NDJSON
  --dup-every K  every K-th item reuses the ref of the item before it
The products follow the benchmark workload (../shared/bench/gen_products.py).
"""
import json
import random
import sys

COLORS = ["red", "green", "blue", "black", "white", "yellow", "navy", "grey"]
SIZES = ["XS", "S", "M", "L", "XL", "XXL"]
MATERIALS = ["cotton", "wool", "linen", "polyester", "silk", "denim"]
WORDS = ("classic comfortable durable lightweight premium soft breathable organic "
         "stretch slim relaxed everyday travel outdoor summer winter casual formal "
         "washable recycled handmade vintage modern").split()


def product(i, rnd):
    words = " ".join(rnd.choice(WORDS) for _ in range(34))
    return {
        "sku": "SKU-%07d" % i,
        "title": "Product %d %s %s" % (i, rnd.choice(WORDS), rnd.choice(WORDS)),
        "price": {"amount": rnd.randint(199, 99999), "currency": "EUR"},
        "stock": rnd.randint(0, 500),
        "attributes": {"color": rnd.choice(COLORS), "size": rnd.choice(SIZES),
                       "material": rnd.choice(MATERIALS)},
        "description": words[:250],
    }


def main():
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    n = int(args[0])
    seed = int(args[args.index("--seed") + 1]) if "--seed" in args else 42
    dup = int(args[args.index("--dup-every") + 1]) if "--dup-every" in args else 0
    rnd = random.Random(seed)
    out = sys.stdout
    array = "--array" in args
    if array:
        out.write("[")
    for i in range(1, n + 1):
        p = product(i, rnd)
        ref = p["sku"]
        if dup and i > 1 and i % dup == 0:
            ref = "SKU-%07d" % (i - 1)
        line = json.dumps({"ref": ref, "data": p}, separators=(",", ":"))
        if array:
            out.write(("," if i > 1 else "") + line)
        else:
            out.write(line + "\n")
    if array:
        out.write("]\n")


if __name__ == "__main__":
    main()
