"""Suite-wide settings: one torch thread per test worker.

``make test`` runs two pytest workers on two cores; torch's default of one thread per core
per process would make them fight (measured: 56 s vs 10 s for tests/models/).
"""

import torch

torch.set_num_threads(1)
