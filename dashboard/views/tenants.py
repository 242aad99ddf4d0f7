"""PLACEHOLDER: being written now; replace this whole module."""
from django.http import HttpResponse

def tenant_create(request, *args, **kwargs):
    return HttpResponse(status=501)


def tenant_switch(request, *args, **kwargs):
    return HttpResponse(status=501)


def tenant_settings(request, *args, **kwargs):
    return HttpResponse(status=501)


