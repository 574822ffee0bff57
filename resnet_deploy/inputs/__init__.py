"""What goes into a model: the preprocessing contract and the fingerprints that keep calibration,
validation and evaluation samples apart."""

from resnet_deploy.lazy import public

_WHERE = {
    "PreprocessOptions": "contract",
    "data_source": "contract",
    "sample_fingerprints": "samples",
    "check_disjoint": "samples",
}
__all__ = list(_WHERE)
__getattr__, __dir__ = public(__name__, _WHERE)
