#!/usr/bin/env python3
"""Reference values for vmf-core's tests, computed with mpmath at 50 significant digits.

Independent of the Rust code: mpmath's besseli and its own adaptive quadrature.
Run from the repository root:

    python3 -m pip install mpmath==1.3.0
    python3 scripts/vmf_reference.py > crates/vmf-core/tests/data/reference.json
    python3 scripts/vmf_reference.py --derivatives > crates/vmf-core/tests/data/derivatives.json
"""
import json

import mpmath as mp

mp.mp.dps = 50

DIMS = [2, 3, 4, 5, 16, 31, 32, 33, 128, 1024, 4096]
KAPPAS = [0, 1e-3, 0.1, 1, 5, 20, 35, 100, 599, 601, 1e3, 1e4, 1e5]
BESSEL_V = [0, 0.5, 1, 7, 14.5, 15, 63, 511, 2047]
BESSEL_X = [1e-3, 0.5, 10, 40, 500, 600, 601, 1e3, 1e4, 1e5]
CDF_CASES = [(2, 0), (2, 1), (2, 1e5), (3, 20), (4, 1e-3), (16, 20), (128, 1e3), (1024, 1), (4096, 1e5)]


def log_c(d, k):
    v = mp.mpf(d) / 2 - 1
    if k == 0:
        return mp.loggamma(mp.mpf(d) / 2) - mp.log(2) - (mp.mpf(d) / 2) * mp.log(mp.pi)
    k = mp.mpf(k)
    return v * mp.log(k) - (v + 1) * mp.log(2 * mp.pi) - mp.log(mp.besseli(v, k))


def stats(d, k):
    v = mp.mpf(d) / 2 - 1
    if k == 0:
        return log_c(d, 0), mp.mpf(0), mp.mpf(0)
    kk = mp.mpf(k)
    a = mp.besseli(v + 1, kk) / mp.besseli(v, kk)
    lc = log_c(d, k)
    return lc, a, kk * a + lc - log_c(d, 0)


def theta_cdf(d, k, theta):
    k = mp.mpf(k)

    # Split at the mode and around it so the quadrature sees the peak.
    if d == 2:
        mode = mp.mpf(0) if k > 0 else mp.pi / 2
        width = 1 / mp.sqrt(k) if k > 0 else mp.pi
    else:
        c = 2 * k / ((d - 2) + mp.sqrt((d - 2) ** 2 + 4 * k * k)) if k > 0 else mp.mpf(0)
        s = mp.sqrt(1 - c * c)
        mode = mp.atan2(s, c)
        width = 1 / mp.sqrt(k * c + (d - 2) / (s * s))

    # mpmath's quad has an absolute tolerance: scale the integrand to peak 1.
    def f(t):
        g = mp.exp(k * (mp.cos(t) - mp.cos(mode)))
        return g if d == 2 else g * (mp.sin(t) / mp.sin(mode)) ** (d - 2)

    # Split at multiples of the width so each piece is smooth at quadrature scale.
    # mpmath's error estimates are pessimistic here, so check instead that two
    # different splittings (every half width, every third of a width) agree.
    def split(step):
        n = int(64 / step)
        pts = {mp.mpf(0), mp.pi, mode} | {mode + j * step * width for j in range(-n, n + 1)}
        pts = sorted(p for p in pts if 0 <= p <= mp.pi and abs(p - theta) > width * 1e-6)
        left = mp.quad(f, [p for p in pts if p < theta] + [theta])
        right = mp.quad(f, [theta] + [p for p in pts if p > theta])
        return left / (left + right)

    a, b = split(mp.mpf(1) / 2), split(mp.mpf(1) / 3)
    assert abs(a - b) <= mp.mpf(10) ** -20, (d, k, theta, a - b)
    return a, mode, width


def main():
    out = {"generator": "scripts/vmf_reference.py (mpmath %s, %d digits)" % (mp.__version__, mp.mp.dps),
           "bessel": [], "stats": [], "cdf": []}
    for v in BESSEL_V:
        for x in BESSEL_X:
            out["bessel"].append({"v": v, "x": x, "log_iv": float(mp.log(mp.besseli(mp.mpf(v), mp.mpf(x))))})
    for d in DIMS:
        for k in KAPPAS:
            lc, a, kl = stats(d, k)
            out["stats"].append({"dim": d, "kappa": k, "log_normaliser": float(lc),
                                 "mean_w": float(a), "kl": float(kl)})
    for d, k in CDF_CASES:
        _, mode, width = theta_cdf(d, k, mp.mpf(1) / 2)
        for j in (-2, -1, 0, 0.5, 1, 3):
            t = mode + j * width
            if 0 < t < mp.pi:
                c, _, _ = theta_cdf(d, k, t)
                out["cdf"].append({"dim": d, "kappa": k, "theta": float(t), "cdf": float(c)})
    json.dump(out, __import__("sys").stdout, indent=1)
    print()


# (d, kappa, j) points of the quantile's kappa-derivative, at theta = mode + j * width:
# bulk and tails, small and large d, kappa off any grid.
QUANTILE_CASES = [(2, 0.37, 0.5), (2, 2.5e4, 2), (3, 20.0, -0.8), (5, 2.0, 0), (5, 2.0, 2.5),
                  (21, 77.7, 0.3), (129, 3.3e3, -1.5), (1024, 1.7, 1), (1024, 5e4, 4),
                  (4096, 1e5, 0.2), (9, 25000, -0.5)]


def quantile_derivative(d, k, j):
    """theta = mode + j * width and dw/dkappa there by the implicit formula
    sin(theta) int_0^theta (cos phi - A) q(phi) / q(theta) dphi, all in mpmath (no CDF:
    the formula holds at any theta, whatever its probability)."""
    _, mode, width = theta_cdf(d, k, mp.mpf(1) / 2)
    theta = mode + j * width
    assert 0 < theta < mp.pi, (d, k, j)
    kk = mp.mpf(k)
    v = mp.mpf(d) / 2 - 1
    a = mp.besseli(v + 1, kk, maxterms=10**6) / mp.besseli(v, kk, maxterms=10**6)

    def q_rel(t):  # q(t) / q(theta)
        g = mp.exp(kk * (mp.cos(t) - mp.cos(theta)))
        return g if d == 2 else g * (mp.sin(t) / mp.sin(theta)) ** (d - 2)

    n = 128
    pts = sorted({mp.mpf(0), theta} | {p for p in (mode + i * width / 2 for i in range(-n, n + 1))
                                      if 0 < p < theta})
    integral = mp.quad(lambda t: (mp.cos(t) - a) * q_rel(t), pts)
    return theta, mp.sin(theta) * integral


def derivatives():
    out = {"generator": "scripts/vmf_reference.py --derivatives (mpmath %s, %d digits)"
           % (mp.__version__, mp.mp.dps), "stats": [], "quantile": []}
    for d in DIMS + [9]:
        for k in KAPPAS + [25000, 3.3e4, 0.77]:
            if k == 0:
                ap = mp.mpf(1) / d
            else:
                v, kk = mp.mpf(d) / 2 - 1, mp.mpf(k)
                a = mp.besseli(v + 1, kk, maxterms=10**6) / mp.besseli(v, kk, maxterms=10**6)
                ap = 1 - a * a - (d - 1) * a / kk
            out["stats"].append({"dim": d, "kappa": k, "mean_w_derivative": float(ap),
                                 "kl_derivative": float(mp.mpf(k) * ap)})
    for d, k, j in QUANTILE_CASES:
        theta, dw = quantile_derivative(d, k, j)
        out["quantile"].append({"dim": d, "kappa": k, "theta": float(theta),
                                "dw_dkappa": float(dw)})
    return out


if __name__ == "__main__":
    import sys
    if sys.argv[1:] == ["--derivatives"]:
        json.dump(derivatives(), sys.stdout, indent=1)
        print()
    else:
        main()
