"""The queue-safety checker: pure functions over a recorded history (no I/O, no clients).

A history is a dict:

- `acks`: value -> (partition, offset), every record whose delivery was acknowledged;
- `meta`: value -> (producer, instance, n), for every value sent (instance: which producer
  object of that producer sent it; n: its send order within the producer);
- `indeterminate`: value -> reason, every record whose delivery failed or never resolved
  (it may or may not be stored; never counted as lost);
- `reads`: list of (reader, partition, offset, value, after_seek), every record a consumer read
  during the run in the order that reader got it (`after_seek`: the reader was explicitly
  positioned just before this record, so its stream may go backwards there);
- `final`: list of (partition, offset, value), the final read of every partition from offset 0
  to its high watermark, after healing;
- `final_complete`: whether that final read reached every partition's high watermark.

`check(history)` returns {anomaly: [example, ...]} with every anomaly kind as a key:

- `lost`: acknowledged but absent from the final read;
- `unseen`: acknowledged and read by nobody (live readers and the final read);
- `duplicate`: a value read at two different partition+offsets;
- `inconsistent_offset`: a value read at another partition+offset than it was acknowledged at,
  or two different values read at one partition+offset;
- `out_of_order`: a reader's stream of a partition not strictly increasing in offset (except
  right after an explicit seek), or, in the final read of a partition, one producer instance's
  acknowledged values not in send order (an idempotent producer keeps order per partition);
- `unknown_value`: a value read that no producer sent;
- `final_read_incomplete`: the final read did not reach some high watermark (then `lost` and
  `unseen` are not conclusive).
"""

from collections import defaultdict

ANOMALIES = ("lost", "unseen", "duplicate", "inconsistent_offset", "out_of_order",
             "unknown_value", "final_read_incomplete")
FINAL = "final"


def check(h):
    acks = h["acks"]
    meta = h.get("meta", {})
    indeterminate = h.get("indeterminate", {})
    reads = h.get("reads", [])
    final = h.get("final", [])
    out = {k: [] for k in ANOMALIES}

    all_reads = [(r, p, o, v) for (r, p, o, v, _s) in reads] + [(FINAL, p, o, v)
                                                                   for (p, o, v) in final]

    final_values = {v for (_p, _o, v) in final}
    seen_values = {v for (_r, _p, _o, v) in all_reads}
    for v in sorted(acks, key=lambda v: (acks[v], v)):
        if v not in final_values:
            out["lost"].append(f"{v} acked at {fmt_pos(acks[v])}")
        if v not in seen_values:
            out["unseen"].append(f"{v} acked at {fmt_pos(acks[v])}")

    positions = defaultdict(set)  # value -> {(p, o)}
    at_pos = defaultdict(set)  # (p, o) -> {value}
    readers_at = defaultdict(set)  # (p, o, value) -> {reader}
    for (r, p, o, v) in all_reads:
        positions[v].add((p, o))
        at_pos[(p, o)].add(v)
        readers_at[(p, o, v)].add(r)
    for v in sorted(positions):
        if len(positions[v]) > 1:
            out["duplicate"].append(
                f"{v} at {', '.join(fmt_pos(x) for x in sorted(positions[v]))}")
        if v in acks:
            wrong = sorted(x for x in positions[v] if x != acks[v])
            if wrong:
                out["inconsistent_offset"].append(
                    f"{v} acked at {fmt_pos(acks[v])} but read at "
                    f"{', '.join(fmt_pos(x) + ' by ' + '/'.join(sorted(readers_at[x + (v,)])) for x in wrong)}")
    for pos in sorted(at_pos):
        if len(at_pos[pos]) > 1:
            vals = sorted(at_pos[pos])
            out["inconsistent_offset"].append(
                f"{fmt_pos(pos)} holds {len(vals)} values: "
                + ", ".join(f"{v} (by {'/'.join(sorted(readers_at[pos + (v,)]))})" for v in vals))

    # A reader's stream per partition only moves forward.
    last = {}
    for (r, p, o, v, after_seek) in reads:
        key = (r, p)
        if key in last and not after_seek and o <= last[key][0]:
            out["out_of_order"].append(
                f"reader {r} partition {p}: offset {o} ({v}) after {last[key][0]} ({last[key][1]})")
        last[key] = (o, v)
    prev = {}
    for (p, o, v) in sorted(final, key=lambda x: (x[0], x[1])):
        if (p, FINAL) in prev and o <= prev[(p, FINAL)]:
            out["out_of_order"].append(f"final read partition {p}: offset {o} not increasing")
        prev[(p, FINAL)] = o
    # One producer instance's acknowledged values in one partition keep their send order.
    order = {}
    for (p, o, v) in sorted(final, key=lambda x: (x[0], x[1])):
        if v not in acks or v not in meta:
            continue
        producer, instance, n = meta[v]
        key = (p, producer, instance)
        if key in order and n <= order[key][0]:
            out["out_of_order"].append(
                f"partition {p}: {v} (send #{n}) at offset {o} after {order[key][1]} "
                f"(send #{order[key][0]}) of the same producer")
        order[key] = (n, v)

    sent = set(meta) | set(acks) | set(indeterminate)
    for v in sorted(seen_values - sent):
        out["unknown_value"].append(f"{v} read at "
                                    f"{', '.join(fmt_pos(x) for x in sorted(positions[v]))}")
    if not h.get("final_complete", True):
        out["final_read_incomplete"].append(h.get("final_note", "final read incomplete"))
    return out


def fmt_pos(pos):
    return f"p{pos[0]}@{pos[1]}"


def violations(result):
    return sum(len(v) for v in result.values())


def one_line(result):
    """`lost 3, duplicate 1` (the non-zero counts) or `no anomalies`."""
    got = [f"{k} {len(result[k])}" for k in ANOMALIES if result[k]]
    return ", ".join(got) if got else "no anomalies"


def summary_lines(result, examples=10):
    lines = []
    for k in ANOMALIES:
        xs = result[k]
        lines.append(f"  {k}: {len(xs)}")
        for x in xs[:examples]:
            lines.append(f"    e.g. {x}")
    return lines


# --- self-test ------------------------------------------------------------------------------

def _clean_history():
    """Two producers, two partitions, two live readers, a complete final read."""
    acks, meta, final, reads = {}, {}, [], []
    offsets = [0, 0]
    for n in range(6):
        for prod in (0, 1):
            v = f"p{prod}-{n}"
            part = (n + prod) % 2
            meta[v] = (prod, 0, n)
            acks[v] = (part, offsets[part])
            final.append((part, offsets[part], v))
            offsets[part] += 1
    for r in ("c0", "c1"):
        for (p, o, v) in final:
            reads.append((r, p, o, v, False))
    # A value whose delivery failed but which was stored anyway: fine.
    meta["p0-6"] = (0, 0, 6)
    final.append((0, offsets[0], "p0-6"))
    # A failed one that was not stored: also fine.
    meta["p1-6"] = (1, 0, 6)
    return {"acks": acks, "meta": meta, "indeterminate": {"p0-6": "timed out",
                                                          "p1-6": "timed out"},
            "reads": reads, "final": final, "final_complete": True}


def _copy(h):
    return {"acks": dict(h["acks"]), "meta": dict(h["meta"]),
            "indeterminate": dict(h["indeterminate"]), "reads": list(h["reads"]),
            "final": list(h["final"]), "final_complete": h["final_complete"]}


def self_test():
    """Returns a list of failures (empty when the checker detects what it must)."""
    failures = []
    clean = _clean_history()
    r = check(clean)
    if violations(r):
        failures.append(f"clean history reported: {r}")

    def expect(name, mutate, kinds):
        h = _copy(clean)
        mutate(h)
        got = check(h)
        for k in kinds:
            if not got[k]:
                failures.append(f"{name}: {k} not detected ({got})")
        return got

    # lost: an acked value missing from the final read (but seen live: lost, not unseen).
    def lose(h):
        h["final"] = [x for x in h["final"] if x[2] != "p0-2"]
    got = expect("lost", lose, ["lost"])
    if got["unseen"]:
        failures.append("lost-but-seen-live reported as unseen")

    # unseen: missing everywhere.
    def unsee(h):
        h["final"] = [x for x in h["final"] if x[2] != "p1-3"]
        h["reads"] = [x for x in h["reads"] if x[3] != "p1-3"]
    expect("unseen", unsee, ["lost", "unseen"])

    # duplicate: stored twice.
    def dup(h):
        p, o = h["acks"]["p0-1"]
        last = max(x[1] for x in h["final"] if x[0] == p)
        h["final"].append((p, last + 1, "p0-1"))
    expect("duplicate", dup, ["duplicate"])

    # inconsistent: a live reader saw another value at an acked offset.
    def incons(h):
        r = h["reads"][3]
        h["reads"][3] = (r[0], r[1], r[2], "p9-9", r[4])
        h["meta"]["p9-9"] = (9, 0, 9)
        h["indeterminate"]["p9-9"] = "timed out"
    expect("inconsistent (two values at one offset)", incons, ["inconsistent_offset"])

    # inconsistent: read at another offset than acknowledged.
    def moved(h):
        p, o = h["acks"]["p1-2"]
        h["acks"]["p1-2"] = (p, o + 100)
    expect("inconsistent (acked elsewhere)", moved, ["inconsistent_offset"])

    # out of order: a live reader going backwards without a seek.
    def backwards(h):
        h["reads"].insert(5, h["reads"][1])
    expect("out of order (reader backwards)", backwards, ["out_of_order"])
    # ... but not after an explicit seek.
    def seek(h):
        r = h["reads"][1]
        h["reads"].insert(5, (r[0], r[1], r[2], r[3], True))
    got = expect("seek", seek, [])
    if got["out_of_order"]:
        failures.append(f"a seek backwards was reported as out of order: {got['out_of_order']}")

    # out of order: one producer's values in a partition swapped (offsets kept consistent).
    def swapped(h):
        part0 = sorted((x for x in h["final"] if x[0] == 0), key=lambda x: x[1])
        mine = [x for x in part0 if h["meta"].get(x[2], (None,))[0] == 0 and x[2] in h["acks"]]
        a, b = mine[0], mine[1]
        h["final"] = [x for x in h["final"] if x not in (a, b)]
        h["final"] += [(0, a[1], b[2]), (0, b[1], a[2])]
        h["acks"][a[2]], h["acks"][b[2]] = (0, b[1]), (0, a[1])
        h["reads"] = [(r, p, o, b[2] if v == a[2] else a[2] if v == b[2] else v, s)
                      for (r, p, o, v, s) in h["reads"]]
    got = expect("out of order (producer order)", swapped, ["out_of_order"])
    others = [k for k in ANOMALIES if k != "out_of_order" and got[k]]
    if others:
        failures.append(f"producer reorder also reported as {others}: {got}")

    def unknown(h):
        h["final"].append((1, 1000, "garbage"))
    expect("unknown value", unknown, ["unknown_value"])

    def incomplete(h):
        h["final_complete"] = False
    expect("final read incomplete", incomplete, ["final_read_incomplete"])
    return failures
