// The upload page: send the chosen or dropped image to /predict, show the top-k labels.
"use strict";

const TOP_K = 5;

function show(status, isError) {
  const element = document.getElementById("status");
  element.textContent = status;
  element.classList.toggle("error", Boolean(isError));
}

function showModel(model) {
  document.getElementById("model-name").textContent = model.name;
  document.getElementById("model-version").textContent = model.version;
  document.querySelector("#model-digest code").textContent = model.digest;
}

function row(entry) {
  const item = document.createElement("li");
  const label = document.createElement("span");
  label.className = "label";
  label.textContent = entry.label;
  const bar = document.createElement("progress");
  bar.max = 1;
  bar.value = entry.score === null ? 0 : entry.score;
  const score = document.createElement("span");
  score.className = "score";
  score.textContent = entry.score === null ? "n/a" : (entry.score * 100).toFixed(1) + " %";
  item.append(label, bar, score);
  return item;
}

function showPrediction(fileName, prediction) {
  const scores = document.getElementById("scores");
  document.getElementById("result-title").textContent = fileName + ": " + prediction.label;
  scores.replaceChildren(...prediction.top_k.map(row));
  document.getElementById("result").hidden = false;
}

async function classify(file) {
  document.getElementById("result").hidden = true;
  show("Classifying " + file.name + "…");
  const form = new FormData();
  form.append("file", file, file.name);
  let answer;
  try {
    const response = await fetch("/predict?top_k=" + TOP_K, { method: "POST", body: form });
    answer = await response.json();
    if (!response.ok) {
      show(file.name + ": " + answer.error, true);
      return;
    }
  } catch (error) {
    show(file.name + ": " + error.message, true);
    return;
  }
  showModel(answer.model);
  const prediction = answer.predictions[0];
  if (prediction === null || typeof prediction !== "object" || !("top_k" in prediction)) {
    show(file.name + ": the model declares no labels: " + JSON.stringify(prediction), true);
    return;
  }
  show("");
  showPrediction(file.name, prediction);
}

function setUp() {
  const input = document.getElementById("file");
  const drop = document.getElementById("drop");
  input.addEventListener("change", () => {
    if (input.files.length) classify(input.files[0]);
  });
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer.files.length) classify(event.dataTransfer.files[0]);
  });
}

setUp();
