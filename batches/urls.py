from __future__ import annotations

from django.urls import path

from batches import views

app_name = "batches"

urlpatterns = [
    path("", views.batch_page, name="list"),
]
