"""What stage entry points share: their declaration in dvc.yaml and the wrapper that runs them."""
