import os

import torch

# Deterministic, quiet and within two cores.
torch.set_num_threads(min(2, os.cpu_count() or 1))
os.environ.setdefault('OMP_NUM_THREADS', '2')
