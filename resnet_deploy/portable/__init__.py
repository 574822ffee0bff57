"""The numpy-only core that every bundle carries to its device: metrics and tolerance checks,
the latency protocol, int8 I/O, bundle integrity and the least code that loads each runtime.

Runs on Python 3.8+ with numpy and one runtime; nothing here imports TensorFlow or
resnet_deploy. The host imports the same modules (parity, latency, runners), and `package`
copies this folder verbatim into each bundle as `rd_portable/`, so the device judges with
exactly the code the host judged with. Modules import each other relatively, so the folder
works under either name.
"""
from .constants import (DEFAULT_PROTOCOL, EXIT_ERROR, EXIT_EXPORT, EXIT_INPUT, EXIT_INTEGRITY, EXIT_OK,  # noqa: F401
                        EXIT_PARITY, EXIT_PROFILE, EXIT_RUNTIME, MANIFEST, MANIFEST_SUM, PORTABLE_DIR, REFERENCE,
                        SCHEMA_VERSION, SELFTEST)
from .checks import check_manifest, load_reference, no_nan  # noqa: F401
from .device import ProfileMismatch, check_profile  # noqa: F401
from .limits import seconds_problem, thread_problem  # noqa: F401
from .integrity import BundleError, check_member_name, sha256_file, signature_status, verify_bundle  # noqa: F401
from .metrics import CHECKS, acc_drop, breach_text, check, compare, is_classifier_output  # noqa: F401
from .protocol import peak_rss_mb, time_calls  # noqa: F401
from .quantio import dequantize, quantize  # noqa: F401
from .runtimes import (RuntimeMismatch, load_model, ort_session, ov_compile, predict,  # noqa: F401
                       tflite_interpreter_class)
