"""Every constant the host and the device must agree on, in one place."""

# Manifest schema (artifacts and bundles). 2: bundles carry rd_portable/ beside selftest.py.
SCHEMA_VERSION = 2

# File names inside an artifact or a bundle.
MANIFEST = "manifest.json"
MANIFEST_SUM = "manifest.sha256"
SIGNATURE_FILE = "model.sig"  # OpenSSF model-signing signature over the whole bundle (signing.py)
REFERENCE = "reference.npz"
SELFTEST = "selftest.py"
PORTABLE_DIR = "rd_portable"  # this package, as copied into a bundle

# Exit codes, the same on the host CLI and in the device self-test.
EXIT_OK = 0
EXIT_ERROR = 1  # anything else resnet-deploy raised on purpose
EXIT_INPUT = 2  # bad user input: fix the command or the file named
EXIT_EXPORT = 3  # a converter or quantizer failed on a valid input
EXIT_RUNTIME = 4  # a runtime is missing, cannot run the model, or ignored the precision asked for
EXIT_PARITY = 5  # an artifact breaks its tolerance
EXIT_INTEGRITY = 6  # a file does not match its recorded sha256, or a bundle is unsafe to unpack
EXIT_DISK_FULL = 7  # no space left to write an artifact, bundle or report (nothing half-written is left)
EXIT_PROFILE = 8  # the device is not what the bundle was built for (architecture, CPU features)

# The one latency protocol: warm-up of at least warmup_runs and warmup_s, then at least runs
# and seconds of timed calls (capped at max_runs). See DESIGN.md "Latency protocol".
DEFAULT_PROTOCOL = {"warmup_runs": 10, "warmup_s": 1.0, "runs": 50, "seconds": 2.0, "max_runs": 100000}
