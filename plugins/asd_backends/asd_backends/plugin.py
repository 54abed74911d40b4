"""Hook implementations of asd-backends."""
import asdcore


@asdcore.hookimpl
def register_backends(register):
    from .knn import KnnBackend

    register("knn", KnnBackend)
