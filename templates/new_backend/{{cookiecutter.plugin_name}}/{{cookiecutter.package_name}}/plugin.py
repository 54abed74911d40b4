"""Hook implementations of {{ cookiecutter.plugin_name }} (light glue: the backend module is imported on registration)."""
import asdcore

ASDCORE_API = 1  # the asdcore plugin contract this plugin is built for (asdcore.API_VERSION)


@asdcore.hookimpl
def register_backends(register):
    from .{{ cookiecutter.backend_name }} import {{ cookiecutter.class_name }}

    register("{{ cookiecutter.backend_name }}", {{ cookiecutter.class_name }})
