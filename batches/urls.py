from __future__ import annotations

from django.urls import path

from batches import views

app_name = "batches"

urlpatterns = [
    path("", views.batch_page, name="list"),
    path("rows/", views.batch_rows, name="rows"),
    path("<int:pk>/", views.batch_detail, name="detail"),
    path("<int:pk>/progress/", views.batch_progress, name="progress"),
    path("<int:pk>/rows/", views.batch_item_rows, name="item_rows"),
    path("<int:pk>/retry-rows/", views.batch_retry_items, name="retry_items"),
    path("<int:pk>/start/", views.batch_start, name="start"),
    path("<int:pk>/process/", views.batch_process, name="process"),
    path("<int:pk>/cancel/", views.batch_cancel, name="cancel"),
    path("<int:pk>/retry/", views.batch_retry, name="retry"),
    path("<int:pk>/delete/", views.batch_delete, name="delete"),
    path("<int:pk>/download/<str:fmt>/", views.batch_download, name="download"),
    path("<int:pk>/regrade/", views.batch_regrade, name="regrade"),
    path("<int:pk>/run-again/", views.batch_run_again, name="run_again"),
    path("<int:pk>/compare/", views.batch_compare_pick, name="compare_pick"),
    path("<int:pk>/compare/<int:other>/", views.batch_compare, name="compare"),
    path(
        "<int:pk>/compare/<int:other>/download/<str:fmt>/",
        views.batch_compare_download,
        name="compare_download",
    ),
]
