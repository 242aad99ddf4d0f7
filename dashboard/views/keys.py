"""PLACEHOLDER: being written now; replace this whole module."""
from django.http import HttpResponse

def api_key_list(request, *args, **kwargs):
    return HttpResponse(status=501)


def api_key_create(request, *args, **kwargs):
    return HttpResponse(status=501)


def api_key_revoke(request, *args, **kwargs):
    return HttpResponse(status=501)


