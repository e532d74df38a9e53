"""Input of the workspace's own (non-API) actions."""

from __future__ import annotations

from django import forms


class MeasureForm(forms.Form):
    identity = forms.IntegerField()
    text = forms.CharField(required=False, strip=False, max_length=100_000)


class MergeForm(forms.Form):
    other = forms.IntegerField(help_text="the customer merged INTO this ticket's customer")
