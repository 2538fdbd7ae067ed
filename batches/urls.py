from __future__ import annotations

from django.urls import path

from batches.views import actions, detail, evaluation
from batches.views import list as batch_list

app_name = "batches"

urlpatterns = [
    path("", batch_list.batch_page, name="list"),
    path("rows/", batch_list.batch_rows, name="rows"),
    path("<int:pk>/", detail.batch_detail, name="detail"),
    path("<int:pk>/progress/", detail.batch_progress, name="progress"),
    path("<int:pk>/rows/", detail.batch_item_rows, name="item_rows"),
    path("<int:pk>/retry-rows/", actions.batch_retry_items, name="retry_items"),
    path("<int:pk>/start/", actions.batch_start, name="start"),
    path("<int:pk>/process/", actions.batch_process, name="process"),
    path("<int:pk>/cancel/", actions.batch_cancel, name="cancel"),
    path("<int:pk>/retry/", actions.batch_retry, name="retry"),
    path("<int:pk>/delete/", actions.batch_delete, name="delete"),
    path("<int:pk>/download/<str:fmt>/", actions.batch_download, name="download"),
    path("<int:pk>/regrade/", evaluation.batch_regrade, name="regrade"),
    path("<int:pk>/run-again/", evaluation.batch_run_again, name="run_again"),
    path("<int:pk>/compare/", evaluation.batch_compare_pick, name="compare_pick"),
    path("<int:pk>/compare/<int:other>/", evaluation.batch_compare, name="compare"),
    path(
        "<int:pk>/compare/<int:other>/download/<str:fmt>/",
        evaluation.batch_compare_download,
        name="compare_download",
    ),
]
