from __future__ import annotations

from django.urls import include, path

from evaluation import views

app_name = "evaluation"

# The batch pages' evaluation actions, served under /batches/ beside the pages they
# belong to; the question set pages under /sets/ (evaluation.set_urls).
batch_patterns = [
    path("<int:pk>/regrade/", views.batch_regrade, name="regrade"),
    path("<int:pk>/own-set/", views.batch_own_set, name="own_set"),
    path("<int:pk>/regrade/cancel/", views.batch_regrade_cancel, name="regrade_cancel"),
    path("<int:pk>/regrade/progress/", views.batch_regrade_progress, name="regrade_progress"),
    path("<int:pk>/rejudge/", views.batch_rejudge, name="rejudge"),
    path("<int:pk>/run-again/", views.batch_run_again, name="run_again"),
    path("<int:pk>/compare/", views.batch_compare_pick, name="compare_pick"),
    path("<int:pk>/compare/<int:other>/", views.batch_compare, name="compare"),
    path(
        "<int:pk>/compare/<int:other>/download/<str:fmt>/",
        views.batch_compare_download,
        name="compare_download",
    ),
]

urlpatterns = [
    path("batches/", include(batch_patterns)),
    path("sets/", include("evaluation.set_urls")),
]
