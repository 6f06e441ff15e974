"""What the pages and ``show`` read: results, metrics, figures, capability. Torch-free."""
