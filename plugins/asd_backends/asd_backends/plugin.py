"""Hook implementations of asd-backends (components by path: imported when a run uses them)."""
import asdcore

ASDCORE_API = 1  # the asdcore plugin contract this plugin is built for (asdcore.API_VERSION)


@asdcore.hookimpl
def register_backends(register):
    register("knn", "asd_backends.knn:KnnBackend")
    register("kmeans", "asd_backends.kmeans:KmeansBackend")
    register("knn_rescale", "asd_backends.rescale:KnnRescaleBackend")
    register("passthrough", "asd_backends.passthrough:PassthroughBackend")
    register("mahalanobis", "asd_backends.mahalanobis:MahalanobisBackend")
    register("memory_bank", "asd_backends.memory_bank:MemoryBankBackend")
