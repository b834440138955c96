//! Digamma and trigamma for x > 0, in f64.
//!
//! Small enough to own: `libm` has lgamma but no polygamma, and the statistics crates
//! that do pull in far more than two functions. Both shift x up by the recurrences
//! psi(x) = psi(x + 1) - 1/x and psi'(x) = psi'(x + 1) + 1/x^2 until x >= 10, then sum
//! their asymptotic series (Bernoulli numbers up to B_14), whose next term is below
//! 1e-17 of the value there.

/// Where the asymptotic series takes over.
const SHIFT_TO: f64 = 10.0;

/// psi(x) = d/dx ln Gamma(x), for x > 0.
pub fn digamma(x: f64) -> f64 {
    debug_assert!(x > 0.0, "digamma({x}): x must be positive");
    let (mut x, mut acc) = (x, 0.0);
    while x < SHIFT_TO {
        acc -= 1.0 / x;
        x += 1.0;
    }
    let r = 1.0 / (x * x);
    // sum_k B_2k / (2k x^2k), k = 1..7, by Horner in 1/x^2.
    let series = r
        * (1.0 / 12.0
            - r * (1.0 / 120.0
                - r * (1.0 / 252.0
                    - r * (1.0 / 240.0 - r * (1.0 / 132.0 - r * (691.0 / 32760.0 - r / 12.0))))));
    acc + x.ln() - 0.5 / x - series
}

/// psi'(x) = d^2/dx^2 ln Gamma(x), for x > 0.
pub fn trigamma(x: f64) -> f64 {
    debug_assert!(x > 0.0, "trigamma({x}): x must be positive");
    let (mut x, mut acc) = (x, 0.0);
    while x < SHIFT_TO {
        acc += 1.0 / (x * x);
        x += 1.0;
    }
    let r = 1.0 / (x * x);
    // 1/x + 1/(2x^2) + sum_k B_2k / x^(2k+1), k = 1..7.
    let series = r
        * (1.0 / 6.0
            - r * (1.0 / 30.0
                - r * (1.0 / 42.0
                    - r * (1.0 / 30.0 - r * (5.0 / 66.0 - r * (691.0 / 2730.0 - r * 7.0 / 6.0))))));
    acc + (1.0 + 0.5 / x + series) / x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_forms_and_recurrences() {
        // psi(1) = -gamma, psi(1/2) = -gamma - 2 ln 2, psi'(1) = pi^2/6, psi'(1/2) = pi^2/2.
        let euler = 0.577_215_664_901_532_9;
        let pi2 = std::f64::consts::PI.powi(2);
        let close = |a: f64, b: f64| (a - b).abs() <= 2e-15 * b.abs().max(1.0);
        assert!(close(digamma(1.0), -euler), "{}", digamma(1.0));
        assert!(close(digamma(0.5), -euler - 2.0 * std::f64::consts::LN_2));
        assert!(close(trigamma(1.0), pi2 / 6.0), "{}", trigamma(1.0));
        assert!(close(trigamma(0.5), pi2 / 2.0));
        // Across the switch to the series, and far out: the recurrences hold.
        for x in [9.3, 9.999, 10.0, 37.5, 1e4] {
            let rel = (digamma(x + 1.0) - digamma(x) - 1.0 / x).abs() * x;
            assert!(rel < 1e-11, "psi at {x}: {rel}");
            let rel = (trigamma(x) - trigamma(x + 1.0) - 1.0 / (x * x)).abs() * x * x;
            assert!(rel < 1e-11, "psi' at {x}: {rel}");
        }
    }
}
