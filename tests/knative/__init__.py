"""Tests of the Kubernetes side: func.yaml files and the knative/ Kustomize overlays."""
