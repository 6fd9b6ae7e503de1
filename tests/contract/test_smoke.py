"""The MKA1 documentation's own call, pointed at batchgate."""

import json
import time

from mka1 import SDK

STACKS = ("local", "postgresql+s3")  # metadata and files: embedded, or PostgreSQL and S3


def test_seed_snippet_returns_a_complete_batch(gateway):
    lines = [
        {
            "custom_id": f"r{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "m", "messages": [{"role": "user", "content": f"hello {i}"}]},
        }
        for i in range(3)
    ]
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    with SDK(bearer_auth=gateway.key, server_url=gateway.url) as sdk:
        file = sdk.llm.files.upload(file={"file_name": "in.jsonl", "content": data}, purpose="batch")
        created = sdk.llm.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions")
        deadline = time.monotonic() + 30
        while (batch := sdk.llm.batches.get(batch_id=created.id)).status not in ("completed", "failed"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert batch.status == "completed"
        assert batch.request_counts.total == 3 and batch.request_counts.completed == 3
        output = sdk.llm.files.content(file_id=batch.output_file_id).read().decode().splitlines()
    answers = {json.loads(l)["custom_id"]: json.loads(l) for l in output}
    for i in range(3):
        body = answers[f"r{i}"]["response"]["body"]
        assert body["choices"][0]["message"]["content"] == f"echo: hello {i}"
