"""Templates `manage.py startplugin` lays out a new channel plugin from (string.Template, `${...}`)."""
