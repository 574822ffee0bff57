"""One module per backend: a Target (export) and a Runner each. resnet_deploy.backend.target registers
them by import path ("resnet_deploy.targets.tflite:TFLiteTarget"), so a backend's module, and its framework,
load only when that target is used; frameworks are imported inside the functions that need them."""
