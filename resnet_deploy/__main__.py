"""`python -m resnet_deploy ...`: the same CLI as `python cli.py` and `resnet-deploy`."""

from resnet_deploy.cli.main import main

if __name__ == "__main__":
    main()
