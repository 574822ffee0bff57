"""One module per backend. Each registers with resnet_deploy.target and imports its
framework lazily, inside the functions that need it."""
