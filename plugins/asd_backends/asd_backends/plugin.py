"""Hook implementations of asd-backends."""
import asdcore


@asdcore.hookimpl
def register_backends(register):
    from .kmeans import KmeansBackend
    from .knn import KnnBackend
    from .mahalanobis import MahalanobisBackend
    from .memory_bank import MemoryBankBackend
    from .passthrough import PassthroughBackend
    from .rescale import KnnRescaleBackend

    register("knn", KnnBackend)
    register("kmeans", KmeansBackend)
    register("knn_rescale", KnnRescaleBackend)
    register("passthrough", PassthroughBackend)
    register("mahalanobis", MahalanobisBackend)
    register("memory_bank", MemoryBankBackend)
