#!/usr/bin/env python3
"""Reference values of the Power Spherical distribution for vmf-core's tests.

PS(mu, kappa) on S^(d-1) has density C (1 + <mu, z>)^kappa; t = <mu, z> has the
density proportional to (1 + t)^kappa (1 - t^2)^((d-3)/2). Everything here is computed
by mpmath's quadrature of that density at 40 significant digits, not from the Beta and
digamma closed forms the Rust code uses: the normaliser, E[t], E[log(1 + t)] and the
moments whose kappa-derivatives they are (d log C / d kappa = -E[log(1 + t)], so
dKL/dkappa = kappa Var[log(1 + t)] and dE[t]/dkappa = Cov(t, log(1 + t))).
With --quantiles it prints instead the quantiles of theta = arccos(t) at a few
probabilities, for the tests of the inverse-CDF table: sin^2(theta / 2) = (1 - t) / 2
follows Beta((d - 1)/2, (d - 1)/2 + kappa), whose regularised incomplete Beta function
mpmath evaluates (betainc, 40 digits) and findroot inverts (bisection), independently of
the table's quadrature of the angle's density. Run from the repository root:

    python3 -m pip install mpmath==1.3.0
    python3 scripts/power_spherical_reference.py > crates/vmf-core/tests/data/power_spherical.json
    python3 scripts/power_spherical_reference.py --quantiles > crates/vmf-core/tests/data/power_spherical_quantiles.json
"""
import json
import sys

import mpmath as mp

mp.mp.dps = 40

DIMS = [2, 3, 5, 16, 41, 128, 1024, 4096]
KAPPAS = [0, 1e-6, 1e-3, 0.1, 1, 10, 100, 1e3, 1e4, 1e5]


def case(d, k):
    d, k = mp.mpf(d), mp.mpf(k)
    # u = (1 + t) / 2 in (0, 1): the density of t in u, up to a constant.
    a, b = (d - 1) / 2 + k, (d - 1) / 2
    mode = (a - 1) / (a + b - 2) if a > 1 and b > 1 else mp.mpf(1) / 2
    sd = mp.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
    logmax = (a - 1) * mp.log(mode) + (b - 1) * mp.log(1 - mode)
    points = [mp.mpf(0)]
    for s in (-12, -6, -3, 0, 3, 6, 12):
        p = mode + s * sd
        if points[-1] < p < 1:
            points.append(p)
    points.append(mp.mpf(1))

    def integral(g):
        return mp.quad(lambda u: g(u) * mp.exp((a - 1) * mp.log(u) + (b - 1) * mp.log(1 - u) - logmax), points)

    z = integral(lambda u: 1)
    mean = lambda g: integral(g) / z  # noqa: E731
    t = lambda u: 2 * u - 1  # noqa: E731
    l1t = lambda u: mp.log(2 * u)  # noqa: E731
    m_t, m_l = mean(t), mean(l1t)
    var_l = mean(lambda u: (l1t(u) - m_l) ** 2)
    cov = mean(lambda u: (t(u) - m_t) * (l1t(u) - m_l))
    # The normaliser: 1 / C = |S^(d-2)| * int (1+t)^k (1-t^2)^((d-3)/2) dt, and dt = 2 du,
    # (1 + t) = 2u, (1 - t) = 2(1 - u).
    log_area_d2 = mp.log(2) + (d - 1) / 2 * mp.log(mp.pi) - mp.loggamma((d - 1) / 2)
    log_int = mp.log(z) + logmax + mp.log(2) + (a - 1 + b - 1) * mp.log(2)
    log_c = -(log_area_d2 + log_int)
    log_area_d1 = mp.log(2) + d / 2 * mp.log(mp.pi) - mp.loggamma(d / 2)
    kl = log_c + k * m_l + log_area_d1
    return {
        "dim": int(d), "kappa": float(k),
        "log_normaliser": mp.nstr(log_c, 25), "kl": mp.nstr(kl, 25), "mean_t": mp.nstr(m_t, 25),
        "dkl_dkappa": mp.nstr(k * var_l, 25), "dmean_t_dkappa": mp.nstr(cov, 25),
    }


Q_DIMS = [2, 3, 5, 16, 41, 128, 1024]
Q_KAPPAS = [0, 0.1, 1, 10, 100, 1e3, 1e4, 1e5]
PROBS = ["1e-4", "0.01", "0.25", "0.5", "0.75", "0.99", "0.9999"]


def quantiles(d, k):
    d, k = mp.mpf(d), mp.mpf(k)
    a, b = (d - 1) / 2, (d - 1) / 2 + k  # x = sin^2(theta/2) ~ Beta(a, b)
    out = []
    for p in PROBS:
        p = mp.mpf(p)
        cdf = lambda x: mp.betainc(a, b, 0, x, regularized=True) - p  # noqa: E731
        # Bisection in log x between 1e-300 and 1: monotone, no derivative needed.
        lo, hi = mp.mpf(-690), mp.mpf(0)
        for _ in range(200):
            mid = (lo + hi) / 2
            if cdf(mp.exp(mid)) < 0:
                lo = mid
            else:
                hi = mid
        x = mp.exp((lo + hi) / 2)
        out.append([mp.nstr(p, 6), mp.nstr(2 * mp.asin(mp.sqrt(x)), 20)])
    return {"dim": int(d), "kappa": float(k), "theta": out}


if "--quantiles" in sys.argv:
    print(json.dumps([quantiles(d, k) for d in Q_DIMS for k in Q_KAPPAS], indent=1))
else:
    print(json.dumps([case(d, k) for d in DIMS for k in KAPPAS], indent=1))
