#!/usr/bin/env python
"""`python cli.py ...` from the repository root; the same CLI as the `resnet-deploy` script."""

from resnet_deploy.cli.main import main

if __name__ == "__main__":
    main()
