"""Small random latent-mixture problems shared by the maths tests."""
import numpy as np


def latent_case(seed, k, d, b, s2_low, s2_high):
    """K Gaussians (m, v, alpha) in D dims and B encoder outputs (mu, s2) near them, with sampled codes z."""
    rng = np.random.default_rng(seed)
    m = rng.uniform(-1, 1, (k, d)).astype(np.float32)
    v = rng.uniform(0.3, 1.5, (k, d)).astype(np.float32)
    alpha = rng.dirichlet(np.ones(k))[:, None].astype(np.float32)
    mu = (m[rng.integers(0, k, b)] + 0.3 * rng.normal(size=(b, d))).astype(np.float32)
    s2 = rng.uniform(s2_low, s2_high, (b, d)).astype(np.float32)
    z = (mu + np.sqrt(s2) * rng.normal(size=(b, d))).astype(np.float32)
    return dict(m=m, v=v, alpha=alpha, mu=mu, s2=s2, z=z)
