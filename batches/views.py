"""Batch pages: the BatchPage (upload + list) and the batch detail."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from batches.selectors import batches_for


@login_required
@require_GET
def batch_page(request: HttpRequest) -> HttpResponse:
    return render(request, "batches/list.html", {"batches": batches_for(request.user)})
