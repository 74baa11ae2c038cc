"""An external HTTP worker for the jobs benchmark: claims jobs of a queue and completes them at once,
over one keep-alive connection, until the queue stays empty for a second."""
import http.client
import json
import sys

port, queue = int(sys.argv[1]), sys.argv[2]
connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
done = 0
while True:
    connection.request("POST", f"/v1/queues/{queue}/claim?wait=1&lease=30")
    response = connection.getresponse()
    body = response.read()
    if response.status == 204:
        break
    job = json.loads(body)
    completion = json.dumps({"leaseToken": job["lease"]["token"], "result": None})
    connection.request("POST", f"/v1/jobs/{job['id']}/complete", body=completion,
                       headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    response.read()
    assert response.status == 200, response.status
    done += 1
print(done)
