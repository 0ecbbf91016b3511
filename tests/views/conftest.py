"""Views tier: PyTorch Geometric graphs, torch batching, the PyG example (extra ``pyg``)."""

from support import skip_tier_unless

skip_tier_unless("views", "pyg", "torch", "torch_geometric", "vesin")
