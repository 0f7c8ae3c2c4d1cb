#!/usr/bin/env python3
"""Per-family statistics of container_* series in a directory of scrapes (<unix-ms>.prom files):
how values move from scrape to scrape. Usage: analyze.py DIR [DIR2 ...] -> CSV on stdout.

Columns:
  family, series, samples,
  const_share      share of series whose value never changes while present,
  change_share     share of scrape-to-scrape steps where the value changed,
  median_step      median |delta| over changed steps (per step, i.e. per ~15 s),
  median_rel_step  median |delta| / |value| over changed steps,
  step_cv          median over series of (stdev / mean) of the non-negative deltas (noise of a rate),
  sig_digits       median significant digits of the exposed value text (changed values),
  max_sig_digits   max of the same,
  frac_digits      median digits after the decimal point,
  int_share        share of values that are whole numbers,
  gcd_4096_share   share of changed steps that are whole multiples of 4096 (pages),
  resets           counter decreases seen.
"""
import math, os, re, statistics, sys
from collections import defaultdict

LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(?:\s+\S+)?$')


def normalize(txt):
    """The value's decimal text without sign, exponent or trailing fraction zeros ("4096.0" -> "4096")."""
    t = txt.lower().lstrip("+-")
    v = float(t)
    if not math.isfinite(v):
        return "0", 0
    r = repr(v)  # shortest round-trip text, as Go's strconv 'g' would give the digits
    if "e" in r:
        mant, ex = r.split("e", 1)
        ex = int(ex)
    else:
        mant, ex = r, 0
    ip, _, fp = mant.partition(".")
    fp = fp.rstrip("0")
    return ip + fp, max(0, len(fp) - ex)


def sig_digits(txt):
    digits, _ = normalize(txt)
    d = digits.lstrip("0").rstrip("0")
    return max(len(d), 1)


def frac_digits(txt):
    return normalize(txt)[1]


def load(dirs):
    series = defaultdict(list)  # key -> [(t, text)]
    for d in dirs:
        for f in sorted(os.listdir(d), key=lambda x: int(x.split(".")[0])):
            if not f.endswith(".prom"):
                continue
            t = int(f.split(".")[0])
            for line in open(os.path.join(d, f)):
                if not line.startswith("container_"):
                    continue
                m = LINE.match(line.strip())
                if m:
                    series[(m.group(1), m.group(2) or "")].append((t, m.group(3)))
    return series


def main():
    series = load(sys.argv[1:])
    fam = defaultdict(list)
    for (name, labels), pts in series.items():
        fam[name].append(pts)
    print("family,series,samples,const_share,change_share,median_step,median_rel_step,step_cv,"
          "sig_digits,max_sig_digits,frac_digits,int_share,gcd_4096_share,resets")
    for name in sorted(fam):
        ss = fam[name]
        counter = name.endswith("_total")
        n_const = steps = changed = resets = mult4096 = 0
        abs_steps, rel_steps, cvs, sig, frac = [], [], [], [], []
        ints = samples = 0
        for pts in ss:
            vals = [float(v) for _, v in pts]
            samples += len(vals)
            ints += sum(1 for v in vals if math.isfinite(v) and v == int(v))
            if len(set(vals)) == 1:
                n_const += 1
            deltas = []
            for i in range(1, len(vals)):
                steps += 1
                d = vals[i] - vals[i - 1]
                if d != 0:
                    changed += 1
                    abs_steps.append(abs(d))
                    if vals[i] != 0:
                        rel_steps.append(abs(d) / abs(vals[i]))
                    sig.append(sig_digits(pts[i][1]))
                    frac.append(frac_digits(pts[i][1]))
                    if d == int(d) and int(d) % 4096 == 0:
                        mult4096 += 1
                if counter and d < 0:
                    resets += 1
                elif d >= 0:
                    deltas.append(d)
            if len(deltas) >= 4 and statistics.mean(deltas) > 0:
                cvs.append(statistics.pstdev(deltas) / statistics.mean(deltas))
        med = lambda xs: statistics.median(xs) if xs else float("nan")
        print("%s,%d,%d,%.3f,%.3f,%.6g,%.3g,%.3g,%s,%s,%s,%.3f,%s,%d" % (
            name, len(ss), samples, n_const / len(ss), changed / steps if steps else 0,
            med(abs_steps), med(rel_steps), med(cvs),
            med(sig) if sig else "", max(sig) if sig else "", med(frac) if frac else "",
            ints / samples if samples else 0,
            ("%.3f" % (mult4096 / changed)) if changed else "", resets))


if __name__ == "__main__":
    main()
