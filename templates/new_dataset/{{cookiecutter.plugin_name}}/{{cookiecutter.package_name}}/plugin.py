"""Hook implementations of {{ cookiecutter.plugin_name }} (light glue: the dataset is registered by its path and
imported when a run first uses it)."""
import asdcore

ASDCORE_API = 1  # the asdcore plugin contract this plugin is built for (asdcore.API_VERSION)


@asdcore.hookimpl
def register_datasets(register):
    register("{{ cookiecutter.dataset_name }}", "{{ cookiecutter.package_name }}.{{ cookiecutter.dataset_name }}:{{ cookiecutter.class_name }}")
