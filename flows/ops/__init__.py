"""Operations: deployments and serve, the fan-out, maintenance and reprocess, the offline demo."""
