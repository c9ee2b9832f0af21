"""The console's forms: they parse what a person typed; the services decide whether it is allowed."""

from django import forms

from governance.promotion.models import WaivableGate
from governance.registry.models import RiskTier


class CommentForm(forms.Form):
    comment = forms.CharField(required=False, max_length=10000, widget=forms.Textarea(attrs={"rows": 2}))


class RequiredCommentForm(forms.Form):
    comment = forms.CharField(max_length=10000, widget=forms.Textarea(attrs={"rows": 2}))


class ConfirmTierForm(forms.Form):
    risk_tier = forms.ChoiceField(choices=RiskTier.choices)
    comment = forms.CharField(max_length=10000, widget=forms.Textarea(attrs={"rows": 2}))
    revision = forms.IntegerField(min_value=0, widget=forms.HiddenInput)


class PromotionRequestForm(forms.Form):
    environment = forms.SlugField()
    comment = forms.CharField(required=False, max_length=10000, widget=forms.Textarea(attrs={"rows": 2}))


class PolicyPublishForm(forms.Form):
    source = forms.CharField(widget=forms.Textarea(attrs={"rows": 18, "spellcheck": "false"}))
    comment = forms.CharField(max_length=10000)


class ExceptionGrantForm(forms.Form):
    model = forms.CharField(max_length=200)
    version = forms.IntegerField(min_value=1)
    environment = forms.SlugField()
    gate = forms.ChoiceField(choices=WaivableGate.choices)
    target = forms.CharField(required=False, max_length=200)
    name = forms.CharField(max_length=200)
    justification = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}))
    requested_by = forms.CharField(max_length=150)
    expires_at = forms.DateTimeField(
        help_text="UTC", input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )  # fmt: skip


def first_error(form: forms.Form) -> str:
    for name, errors in form.errors.items():
        label = "" if name == "__all__" else f"{name.replace('_', ' ')}: "
        return f"{label}{errors[0]}"
    return ""
