"""Hook implementations of asd-backends."""
import asdcore


@asdcore.hookimpl
def register_backends(register):
    from .knn import KnnBackend
    from .passthrough import PassthroughBackend

    register("knn", KnnBackend)
    register("passthrough", PassthroughBackend)
