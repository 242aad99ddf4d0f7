"""PLACEHOLDER: being written now; replace this whole module."""
from django.http import HttpResponse

def tool_list(request, *args, **kwargs):
    return HttpResponse(status=501)


def tool_create(request, *args, **kwargs):
    return HttpResponse(status=501)


def tool_edit(request, *args, **kwargs):
    return HttpResponse(status=501)


def tool_duplicate(request, *args, **kwargs):
    return HttpResponse(status=501)


def tool_delete(request, *args, **kwargs):
    return HttpResponse(status=501)


