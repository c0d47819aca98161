// A Node.js http server for the receive-path tests: answers each request with
// the sha256 and length of its body (so every byte it read is checked), or with
// a fixed page for a GET. Prints "listening" once it accepts connections.
// usage: node recv_node_server.js PORT
const crypto = require('crypto');
const http = require('http');

http.createServer((req, res) => {
  const hash = crypto.createHash('sha256');
  let length = 0;
  req.on('data', (chunk) => {
    hash.update(chunk);
    length += chunk.length;
  });
  req.on('end', () => res.end(`${length} ${hash.digest('hex')}\n`));
}).listen(+process.argv[2], '127.0.0.1', () => console.log('listening'));
