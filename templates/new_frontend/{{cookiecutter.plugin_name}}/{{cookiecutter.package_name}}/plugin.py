"""Hook implementations of {{ cookiecutter.plugin_name }} (light glue: the frontend is registered by its path and
imported, with torch, when a run first uses it)."""
import asdcore

ASDCORE_API = 1  # the asdcore plugin contract this plugin is built for (asdcore.API_VERSION)


@asdcore.hookimpl
def register_frontends(register):
    register("{{ cookiecutter.frontend_name }}", "{{ cookiecutter.package_name }}.{{ cookiecutter.frontend_name }}:{{ cookiecutter.class_name }}")
